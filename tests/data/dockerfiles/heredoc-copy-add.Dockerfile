FROM alpine
COPY --chmod=755 <<EOF /usr/local/bin/hello
#!/bin/sh
echo hello
EOF
ADD <<EOF /etc/motd
welcome
EOF
COPY <<EOF
no destination
EOF
COPY ["<<EOF", "/json"]
