FROM alpine
EXPOSE 80 443/tcp 53/udp 8000-8010
EXPOSE $PORT
VOLUME /data /logs
VOLUME ["/a b"]
STOPSIGNAL SIGQUIT
STOPSIGNAL 9
USER app:app
WORKDIR /app
WORKDIR sub dir
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
MAINTAINER  Jane Doe <jane@example.com>  
