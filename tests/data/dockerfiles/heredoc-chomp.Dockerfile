FROM alpine
RUN <<-EOT
	echo tabbed
		echo twice
    echo spaces
	EOT
COPY <<-EOF /x
	hello
	EOF
