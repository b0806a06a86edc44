FROM alpine
RUN echo a \  
  b \	
  c\ 	 
RUN d
