package appnet

// QueuedDatagrams reports how many datagrams wait for ReadDatagram.
func (c *Client) QueuedDatagrams() int { return len(c.dgrams) }
