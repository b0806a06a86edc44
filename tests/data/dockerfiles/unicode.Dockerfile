FROM alpine
LABEL description="café ☕ 日本語" emoji=🐳
RUN echo "ünïcödé"
ENV ключ=значение
CMD ["echo", "\u2603"]
