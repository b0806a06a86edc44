# ESCAPE = `
#Syntax=docker/dockerfile:1
FROM alpine
RUN a`
  b
