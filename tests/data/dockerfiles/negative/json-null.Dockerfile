FROM busybox
RUN [null]
