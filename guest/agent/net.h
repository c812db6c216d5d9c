/* Guest network and identity: lo up, eth0 with QEMU user-mode networking's addresses when
 * the device exists (10.0.2.15/24, gateway 10.0.2.2, DNS 10.0.2.3), and the hostname. */
#ifndef SBX_AGENT_NET_H
#define SBX_AGENT_NET_H

/* Brings lo (and eth0 if present) up; logs what it did. */
void net_setup(void);

/* Sets the hostname to `name` and writes /etc/hostname. */
void net_hostname(const char *name);

#endif
