"""spanlake's exporter side: OTel spans -> tracking model -> stores."""
