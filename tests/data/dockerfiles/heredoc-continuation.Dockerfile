FROM alpine
RUN <<EOF \
  && echo after
body \
still body
EOF
RUN --mount=type=cache,target=/c <<EOF
ls /c
EOF
