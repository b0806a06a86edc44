FROM busybox
RUN foo \

# c
bar
BAR baz
