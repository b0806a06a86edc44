FROM busybox
COPY <<A <<B /x
a
A
b
