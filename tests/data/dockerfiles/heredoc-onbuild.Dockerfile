FROM alpine
ONBUILD RUN <<EOF
echo trigger
EOF
ONBUILD COPY <<A /a
body
A
RUN echo after
