FROM ubuntu:14.04

CMD 'echo hello'
CMD ['echo', 'hello']
CMD [ "echo", "hello"
CMD [ "echo", "hello ]
CMD [ "echo", "[\"nested json\"]" ]
CMD [ "echo", "[\\"nested json\\"]" ]
RUN [ "echo" "no comma" ]
RUN ["a",]
ENTRYPOINT {"a": 1}
