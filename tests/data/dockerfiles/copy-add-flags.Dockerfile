FROM alpine
COPY --link --parents --exclude=*.tmp --exclude=.git ./src/./a/*.txt /dst/
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/a.tar.gz /
ADD --keep-git-dir=true git@github.com:moby/buildkit.git#v0.10.1 /buildkit
ADD --unpack=false a.tar /x/
COPY --chown=user:group --chmod=u=rwX,go=rX a b /c/
