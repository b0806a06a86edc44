FROM alpine
RUN apt-get install \
# first
    a \
    # indented comment
    b \

    c \
  	 
    d
