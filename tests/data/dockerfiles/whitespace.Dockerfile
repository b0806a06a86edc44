   FROM   alpine   AS   base  
	 RUN	echo   spaced   
  # indented comment
ENV	A	B
CMD    
