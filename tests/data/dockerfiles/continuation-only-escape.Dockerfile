FROM alpine
RUN \
\
echo hi
