FROM alpine
# escape=`
RUN echo \
  x
# syntax=ignored
