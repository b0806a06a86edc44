FROM alpine
RUN <<'EOT' <<"EOT2" <<E"O"F3
$A
EOT
${B}
EOT2
\$C
EOF3
RUN cat "<<EOF"
RUN cat '<<EOF' \<<EOF
