FROM alpine
HEALTHCHECK --interval=30s --timeout=10s --start-period=5s --start-interval=1s --retries=3 CMD curl -f http://localhost/ || exit 1
HEALTHCHECK NONE
HEALTHCHECK CMD ["/bin/check", "--fast"]
HEALTHCHECK	cmd	  echo lower
