FROM busybox
LABEL justakey
