FROM scratch
COPY foo /tmp/
COPY --user=me foo /tmp/
COPY --doit=true foo /tmp/
COPY --user=me --doit=true foo /tmp/
COPY --doit=true -- foo /tmp/
COPY -- foo /tmp/
CMD --doit [ "a", "b" ]
CMD --doit=true -- [ "a", "b" ]
CMD --doit -- [ ]
RUN --x foo bar
RUN --x="a b" --y='c'd z
RUN --x=a\ b --y=\" z
RUN --"" z
RUN --a --
RUN --a= -- --b
RUN ---x a
RUN -x a
RUN --x=café a
