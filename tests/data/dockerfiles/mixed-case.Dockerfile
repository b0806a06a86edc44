from alpine as Build
Run echo a
cOpY a b
OnBuild run echo b
HealthCheck none
