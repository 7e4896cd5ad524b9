"""aftersales: after-sales cases (returns, exchanges, refunds, repairs, complaints), their SLAs and refunds."""
