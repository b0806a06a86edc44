# syntax=docker/dockerfile:1.7
# escape=`

FROM alpine
RUN echo a `
    b
RUN echo c:\path\ `
  d
# escape=\
RUN echo e \
