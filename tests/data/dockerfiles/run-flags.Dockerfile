FROM alpine
RUN --mount=type=secret,id=aws,target=/root/.aws/credentials --mount=type=ssh \
    --network=none --security=insecure aws s3 ls
RUN --mount=type=bind,from=build,source=/out,target=/in,rw cp /in/x /x
RUN --mount="type=cache,target=/var/cache/apt,sharing=locked" apt-get update
RUN --mount=type=tmpfs,target=/tmp,size=64m ls
RUN ["--not-a-flag"]
