FROM alpine
RUN echo a \
  b
# comment
ENV A=1 \
    B=2
CMD ["a"]
