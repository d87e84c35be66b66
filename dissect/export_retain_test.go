package dissect

// PacketHeaderBytes is what a retained packet costs beside its data.
const PacketHeaderBytes = packetHeaderBytes
