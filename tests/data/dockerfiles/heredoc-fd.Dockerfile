FROM alpine
RUN 3<<EOF cat <&3
three
EOF
RUN 10<<-X 2<<Y cat
	ten
	X
two
Y
