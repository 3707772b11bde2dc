/* Hooks between the QEMU platform's start-up code and the image's main(). */
#ifndef QEMU_PLATFORM_H
#define QEMU_PLATFORM_H

/* Called by the fault reporter before it prints the FAULT line: an image that queues
 * output defines it to send what is queued (startup.c has an empty weak default). */
void platform_flush_output(void);

#endif
