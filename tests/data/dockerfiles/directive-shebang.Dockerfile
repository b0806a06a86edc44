#!/usr/bin/env dockerfile-runner
# escape=`
FROM alpine
RUN echo `
