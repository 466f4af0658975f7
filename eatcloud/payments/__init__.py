"""Payment gateways: the ``PaymentGateway`` port and its adapters."""
