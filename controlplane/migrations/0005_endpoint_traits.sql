-- What routing needs to know about an endpoint beyond its price: its tag, quantization,
-- supported parameters and data policy (training, prompt retention, zero data retention), as a
-- JSON object (`store::EndpointTraits`). The catalogue file is reloaded at every start.
ALTER TABLE model_endpoints ADD COLUMN traits TEXT NOT NULL DEFAULT '{}';
