FROM alpine
ONBUILD ADD . /app/src
ONBUILD RUN --mount=type=cache,target=/c make
ONBUILD --flag=x RUN a
ONBUILD  ENV  a=b
ONBUILD CMD ["a"]
ONBUILD HEALTHCHECK NONE
ONBUILD
