FROM busybox
RUN echo ok
FOOBAR baz
