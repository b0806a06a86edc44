# foo=bar
# escape=`
FROM alpine
RUN a\
  b
