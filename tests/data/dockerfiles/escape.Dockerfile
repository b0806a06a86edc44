#escape = `

FROM image
MAINTAINER foo@bar.com
ENV GOPATH `
\go