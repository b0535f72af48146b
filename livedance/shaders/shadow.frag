#version 330 core
// Depth-only pass: the depth attachment is all the shadow map needs.
void main() {}
