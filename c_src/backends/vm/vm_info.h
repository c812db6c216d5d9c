/* What the daemon outside the vm backend uses of it: the image folder option and the
 * accel that `auto` picks, for info(). */
#ifndef SBX_BACKENDS_VM_VM_INFO_H
#define SBX_BACKENDS_VM_VM_INFO_H

struct sbx_core;

/* Sets the default image folder (--vm-image DIR). */
void sbx_vm_set_image_dir(const char *dir);

/* The accel a vm with accel => auto gets here: "kvm", "tcg", or "probing" while the
 * KVM probe runs (started by this call at first use). */
const char *sbx_vm_accel_info(struct sbx_core *core);

#endif
