# syntax=a
# Syntax = b
FROM busybox
