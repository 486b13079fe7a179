"""The headset wing: USB telephony headsets' HID reports to agent events (descriptor,
layout, tracker and report splitter sans-I/O; discovery, hidraw and the service around
them). See docs/house.md."""
