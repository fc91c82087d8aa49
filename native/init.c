/* The action's init. */
int main(void) { return 0; }
