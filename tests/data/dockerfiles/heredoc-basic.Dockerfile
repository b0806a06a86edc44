# syntax=docker/dockerfile:1
FROM alpine
RUN <<EOF
echo hello
echo world
EOF
RUN <<EOF bash
set -e
echo in bash
EOF
RUN cat <<EOF > /file
content
# not a comment

EOF
