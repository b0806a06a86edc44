FROM scratch
ARG foo bar=baz
ARG abc="123 456" def
ARG a\ b=c\ d e='f g'
ARG x=
ARG =y
ARG
