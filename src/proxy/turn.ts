/**
 * Event-loop turns, for telling an upstream's answer from bytes it sent before it could have seen
 * the request. HTTP/1.1 has no request ids: whatever arrives on a pooled connection after a
 * request was written looks like that request's answer. But an answer cannot be read in the same
 * turn as the write that carried its request: libuv reads a batch of ready sockets per poll, and
 * the upstream's reply to a request written during that batch becomes readable only at a later
 * poll (libuv polls again within one turn only when a batch fills its 1,024 slots; a request
 * judged stray then is sent again or refused, never misdelivered). So bytes read in the turn of
 * the write were on their way before it: a stray response (one the upstream sent unasked, or bytes
 * left over from the exchange before), which must never reach the client whose request was just sent.
 *
 * The counter moves on in the check phase (setImmediate), which follows the poll phase where the
 * proxy lanes write their requests. One immediate serves every request written in a turn.
 */
let turn = 0;
let scheduled = false;

function advance(): void {
  turn++;
  scheduled = false;
}

/** The current turn, marked as one in which a request was written. */
export function writeTurn(): number {
  if (!scheduled) {
    scheduled = true;
    setImmediate(advance);
  }
  return turn;
}

/** Whether bytes read now were read in the turn `t` (from writeTurn) of a request's write. */
export function sameTurn(t: number): boolean {
  return scheduled && turn === t;
}
