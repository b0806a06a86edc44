FROM alpine
RUN <<EOF
EOF
RUN <<
RUN <<-
RUN <<EOF<<EOF2
RUN <<'EOF
RUN echo <<$X
body
$X
RUN <<a<b
RUN ["cat", "<<EOF"]
CMD <<EOF
ENTRYPOINT <<EOF
