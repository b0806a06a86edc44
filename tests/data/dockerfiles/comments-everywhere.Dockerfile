# leading
FROM alpine # not a comment
  # indented
RUN echo a # passed to shell
#
#
RUN echo '#'
