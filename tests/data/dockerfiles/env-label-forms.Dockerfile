FROM alpine
ENV A B C
ENV A="B C" D='E F' G=H\ I
ENV A=
ENV =x
LABEL maintainer docker <a@b>
LABEL "com.example.vendor"="ACME Incorporated"
LABEL a=b \
      c=d
LABEL multi.label1="value1" multi.label2="value2" other="value3"
ENV
