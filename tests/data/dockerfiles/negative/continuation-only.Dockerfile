FROM busybox
\
