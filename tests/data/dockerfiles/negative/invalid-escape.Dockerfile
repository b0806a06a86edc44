# escape=$
FROM busybox
