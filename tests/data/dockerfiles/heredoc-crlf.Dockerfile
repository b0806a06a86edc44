FROM alpine
RUN <<EOF
echo crlf
EOF
RUN <<-EOF
	x
	EOF
