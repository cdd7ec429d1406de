/*
 * rtuslave: a Modbus RTU slave on a serial device, built on libmodbus, for
 * the adapter's tests. Usage: rtuslave DEVICE UNIT [BAUD]
 *
 * Memory (500 of each table): holding[i] = i, input[i] = 1000 + i,
 * coils[i] = (i % 3 == 0), discrete[i] = (i % 2 == 1); holding 200-201
 * hold float32 1.5 (ABCD), holding 202-203 hold uint32 0x12345678 (CDAB).
 * Prints "ready" once the device is open; serves until the line breaks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <modbus.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s DEVICE UNIT [BAUD]\n", argv[0]);
        return 2;
    }
    int baud = argc > 3 ? atoi(argv[3]) : 9600;
    modbus_t *ctx = modbus_new_rtu(argv[1], baud, 'N', 8, 1);
    if (ctx == NULL) {
        fprintf(stderr, "modbus_new_rtu: %s\n", modbus_strerror(errno));
        return 1;
    }
    modbus_set_slave(ctx, atoi(argv[2]));
    modbus_set_error_recovery(ctx, MODBUS_ERROR_RECOVERY_PROTOCOL);
    /* After a request for another unit libmodbus takes the next frame for
     * that unit's answer and ignores it, waiting up to the response timeout.
     * Keep that wait shorter than the master's timeout, so that a unit that
     * never answers does not make this slave swallow the next request. */
    modbus_set_response_timeout(ctx, 0, 50000);
    if (modbus_connect(ctx) == -1) {
        fprintf(stderr, "modbus_connect: %s\n", modbus_strerror(errno));
        return 1;
    }
    modbus_mapping_t *mb = modbus_mapping_new(500, 500, 500, 500);
    if (mb == NULL) {
        fprintf(stderr, "modbus_mapping_new: %s\n", modbus_strerror(errno));
        return 1;
    }
    for (int i = 0; i < 500; i++) {
        mb->tab_registers[i] = i;
        mb->tab_input_registers[i] = 1000 + i;
        mb->tab_bits[i] = i % 3 == 0;
        mb->tab_input_bits[i] = i % 2 == 1;
    }
    mb->tab_registers[200] = 0x3fc0;
    mb->tab_registers[201] = 0x0000;
    mb->tab_registers[202] = 0x5678;
    mb->tab_registers[203] = 0x1234;
    printf("ready\n");
    fflush(stdout);

    uint8_t query[MODBUS_RTU_MAX_ADU_LENGTH];
    for (;;) {
        int rc = modbus_receive(ctx, query);
        if (rc > 0) {
            modbus_reply(ctx, query, rc, mb);
        } else if (rc == -1 && (errno == EBADF || errno == EIO || errno == ENXIO || errno == ECONNRESET)) {
            break; /* the pty went away */
        }
        /* rc == 0: a request for another unit; -1 otherwise: a garbled frame */
    }
    modbus_mapping_free(mb);
    modbus_close(ctx);
    modbus_free(ctx);
    return 0;
}
