package dissect

// AMQPMethodName exposes the method table to the external tests, which
// compare with tshark's numeric class and method ids.
func AMQPMethodName(class, method uint16) string { return amqpMethods[[2]uint16{class, method}] }
