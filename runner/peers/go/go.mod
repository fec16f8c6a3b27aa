module shootout/peers/go

go 1.19
