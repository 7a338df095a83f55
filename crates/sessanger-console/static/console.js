// The console's one script (its Content-Security-Policy allows no other, and no inline code):
// copy a new token, ask before a change that cannot be undone, and add the live page's events
// as they are recorded.
document.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-copy]');
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  field.select();
  navigator.clipboard.writeText(field.value).then(() => { button.textContent = 'Copied'; });
});
document.addEventListener('submit', (event) => {
  const question = event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});

// The most rows the live page keeps: older ones leave at the bottom as new ones arrive.
const LIVE_ROWS = 100;

// Each event the server streams becomes the table's first row. Every value is set as text,
// never as markup. The browser reconnects by itself after a stream ends, from the last event
// it received.
document.addEventListener('DOMContentLoaded', () => {
  const table = document.querySelector('table[data-stream]');
  if (!table) return;
  const rows = table.tBodies[0];
  const events = new EventSource(table.dataset.stream);
  events.addEventListener('row', (message) => {
    const event = JSON.parse(message.data);
    const row = document.createElement('tr');
    const cells = [
      [event.id], [event.at, 'time'], [event.kind], [event.user],
      [event.session, null, 'code'], [event.by || '', null, 'code'], [event.details],
    ];
    for (const [text, className, wrapper] of cells) {
      const cell = row.insertCell();
      if (className) cell.className = className;
      const holder = wrapper ? cell.appendChild(document.createElement(wrapper)) : cell;
      holder.textContent = text;
    }
    rows.insertBefore(row, rows.firstChild);
    while (rows.rows.length > LIVE_ROWS) rows.deleteRow(-1);
  });
});
