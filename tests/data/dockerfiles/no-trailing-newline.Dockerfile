FROM alpine
CMD ["x"]